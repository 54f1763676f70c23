/* Stand-in (see README.md): esp_codec_dev 1.5's include/esp_codec_dev_defaults.h with the ES8311 driver's
   device/include/es8311_codec.h (CONFIG_CODEC_ES8311_SUPPORT, on by default). */
#pragma once
#include "esp_codec_dev.h"
#ifdef __cplusplus
extern "C" {
#endif
typedef struct audio_codec_ctrl_if_t audio_codec_ctrl_if_t; /* interface/audio_codec_ctrl_if.h */
typedef struct audio_codec_gpio_if_t audio_codec_gpio_if_t; /* interface/audio_codec_gpio_if.h */
typedef struct {
    uint8_t port;
    uint8_t addr;
    void *bus_handle;
} audio_codec_i2c_cfg_t;
typedef struct {
    uint8_t port;
    void *rx_handle;
    void *tx_handle;
} audio_codec_i2s_cfg_t;
const audio_codec_gpio_if_t *audio_codec_new_gpio(void);
const audio_codec_ctrl_if_t *audio_codec_new_i2c_ctrl(audio_codec_i2c_cfg_t *i2c_cfg);
const audio_codec_data_if_t *audio_codec_new_i2s_data(audio_codec_i2s_cfg_t *i2s_cfg);

#define ES8311_CODEC_DEFAULT_ADDR (0x30)
typedef struct {
    float pa_voltage;
    float codec_dac_voltage;
    float pa_gain;
} esp_codec_dev_hw_gain_t; /* include/esp_codec_dev_vol.h */
typedef struct {
    const audio_codec_ctrl_if_t *ctrl_if;
    const audio_codec_gpio_if_t *gpio_if;
    esp_codec_dec_work_mode_t codec_mode;
    int16_t pa_pin;
    bool pa_reverted;
    bool master_mode;
    bool use_mclk;
    bool digital_mic;
    bool invert_mclk;
    bool invert_sclk;
    esp_codec_dev_hw_gain_t hw_gain;
    bool no_dac_ref;
    uint16_t mclk_div;
} es8311_codec_cfg_t;
const audio_codec_if_t *es8311_codec_new(es8311_codec_cfg_t *codec_cfg);
#ifdef __cplusplus
}
#endif
