/* Stand-in (see README.md): ESP-IDF components/esp_timer/include/esp_timer.h */
#pragma once
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
int64_t esp_timer_get_time(void);
#ifdef __cplusplus
}
#endif
