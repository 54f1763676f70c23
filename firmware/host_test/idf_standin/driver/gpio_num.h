/* Stand-in (see README.md): ESP-IDF's gpio_num_t (components/soc/<chip>/include/soc/gpio_num.h) */
#pragma once
typedef enum { GPIO_NUM_NC = -1, GPIO_NUM_0 = 0, GPIO_NUM_MAX = 55 } gpio_num_t;
