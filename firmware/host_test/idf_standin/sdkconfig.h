/* Stand-in (see README.md): ESP-IDF generates sdkconfig.h from menuconfig. The host tests give the CONFIG_
   values a build would have with -D (tests/test_firmware.py: the WAV build and the microphone build). */
#pragma once
