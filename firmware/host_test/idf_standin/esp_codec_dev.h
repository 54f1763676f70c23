/* Stand-in (see README.md): esp_codec_dev 1.5's include/esp_codec_dev.h and esp_codec_dev_types.h (ESP-IDF
   component registry, espressif/esp_codec_dev; source in espressif/esp-adf components/esp_codec_dev). */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "esp_err.h"
#ifdef __cplusplus
extern "C" {
#endif
#define ESP_CODEC_DEV_OK (0)
typedef enum {
    ESP_CODEC_DEV_TYPE_NONE,
    ESP_CODEC_DEV_TYPE_IN = (1 << 0),
    ESP_CODEC_DEV_TYPE_OUT = (1 << 1),
    ESP_CODEC_DEV_TYPE_IN_OUT = (ESP_CODEC_DEV_TYPE_IN | ESP_CODEC_DEV_TYPE_OUT),
} esp_codec_dev_type_t;
typedef struct {
    uint8_t bits_per_sample;
    uint8_t channel;
    uint16_t channel_mask;
    uint32_t sample_rate;
    int mclk_multiple;
} esp_codec_dev_sample_info_t;
typedef enum {
    ESP_CODEC_DEV_WORK_MODE_NONE,
    ESP_CODEC_DEV_WORK_MODE_ADC = (1 << 0),
    ESP_CODEC_DEV_WORK_MODE_DAC = (1 << 1),
    ESP_CODEC_DEV_WORK_MODE_BOTH = (ESP_CODEC_DEV_WORK_MODE_ADC | ESP_CODEC_DEV_WORK_MODE_DAC),
    ESP_CODEC_DEV_WORK_MODE_LINE = (1 << 2),
} esp_codec_dec_work_mode_t;
typedef struct audio_codec_if_t audio_codec_if_t;           /* interface/audio_codec_if.h */
typedef struct audio_codec_data_if_t audio_codec_data_if_t; /* interface/audio_codec_data_if.h */
typedef struct {
    esp_codec_dev_type_t dev_type;
    const audio_codec_if_t *codec_if;
    const audio_codec_data_if_t *data_if;
} esp_codec_dev_cfg_t;
typedef void *esp_codec_dev_handle_t;
esp_codec_dev_handle_t esp_codec_dev_new(esp_codec_dev_cfg_t *codec_dev_cfg);
int esp_codec_dev_open(esp_codec_dev_handle_t codec, esp_codec_dev_sample_info_t *fs);
int esp_codec_dev_read(esp_codec_dev_handle_t codec, void *data, int len);
int esp_codec_dev_set_in_gain(esp_codec_dev_handle_t codec, float db_value);
#ifdef __cplusplus
}
#endif
