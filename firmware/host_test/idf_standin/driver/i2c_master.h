/* Stand-in (see README.md): ESP-IDF 5.3's components/esp_driver_i2c/include/driver/i2c_master.h and
   i2c_types.h, hal/i2c_types.h: the members app_main.cpp sets (it assigns them by name). */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "esp_err.h"
#include "gpio_num.h"
#ifdef __cplusplus
extern "C" {
#endif
typedef int i2c_port_num_t;
typedef enum { I2C_CLK_SRC_DEFAULT = 4 } i2c_clock_source_t; /* soc_periph_i2c_clk_src_t: the chip's default */
typedef struct i2c_master_bus_t *i2c_master_bus_handle_t;
typedef struct {
    i2c_port_num_t i2c_port;
    gpio_num_t sda_io_num;
    gpio_num_t scl_io_num;
    i2c_clock_source_t clk_source;
    uint8_t glitch_ignore_cnt;
    int intr_priority;
    size_t trans_queue_depth;
    struct {
        uint32_t enable_internal_pullup : 1;
        uint32_t allow_pd : 1;
    } flags;
} i2c_master_bus_config_t;
esp_err_t i2c_new_master_bus(const i2c_master_bus_config_t *bus_config, i2c_master_bus_handle_t *ret_bus_handle);
#ifdef __cplusplus
}
#endif
