// Stand-in (see README.md): the parts of ESP-DL 3.3's dl::Model, dl::TensorBase, esp_err_t and
// fbs::model_location_type_t that app_main.cpp uses (dl/model/include/dl_model_base.hpp,
// dl/tensor/include/dl_tensor_base.hpp, dl/dl_define.hpp, fbs_loader/include/fbs_model.hpp).
// ESPDL_VERSION (major*10000 + minor*100 + patch) leaves out what a release did not have yet.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#ifndef ESPDL_VERSION
#error "define ESPDL_VERSION, e.g. -DESPDL_VERSION=30309 for ESP-DL 3.3.9"
#endif

#include "esp_err.h"

namespace fbs {
typedef enum {
    MODEL_LOCATION_IN_FLASH_RODATA = 0,
    MODEL_LOCATION_IN_FLASH_PARTITION = 1,
    MODEL_LOCATION_IN_SDCARD = 2,
} model_location_type_t;
}  // namespace fbs

namespace dl {
typedef enum {
    DATA_TYPE_UNDEFINED = 0,
    DATA_TYPE_FLOAT = 1,
    DATA_TYPE_UINT8 = 2,
    DATA_TYPE_INT8 = 3,
    DATA_TYPE_UINT16 = 4,
    DATA_TYPE_INT16 = 5,
} dtype_t;

typedef enum { RUNTIME_MODE_AUTO = 0, RUNTIME_MODE_SINGLE_CORE = 1, RUNTIME_MODE_MULTI_CORE = 2 } runtime_mode_t;
typedef enum { MEMORY_MANAGER_GREEDY = 0, LINEAR_MEMORY_MANAGER = 1 } memory_manager_t;

class TensorBase {
public:
    int get_size();
    int get_bytes();
    std::vector<int> get_shape();
    virtual void *get_element_ptr();
    int get_exponent();
    dtype_t get_dtype();
};

class Model {
public:
    Model(const char *rodata_address_or_partition_label_or_path, const char *model_name,
          fbs::model_location_type_t location = fbs::MODEL_LOCATION_IN_FLASH_RODATA, int max_internal_size = 0,
          memory_manager_t mm_type = MEMORY_MANAGER_GREEDY, const uint8_t *key = nullptr, bool param_copy = true,
          const std::map<std::string, std::vector<int>> &input_shapes = {});
    virtual ~Model();
    virtual void run(runtime_mode_t mode = RUNTIME_MODE_SINGLE_CORE);
    virtual std::map<std::string, TensorBase *> &get_inputs();
    virtual std::map<std::string, TensorBase *> &get_outputs();
    esp_err_t test();
    void profile_memory();
    void profile_module(bool sort_module_by_latency = false);
    std::string get_metadata_prop(const std::string &key);
#if ESPDL_VERSION >= 30302
    virtual void reset();
#endif
};
}  // namespace dl
