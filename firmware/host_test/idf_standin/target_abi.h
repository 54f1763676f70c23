/* The ESP toolchains' fixed-width integer types on a PC's g++ (see README.md): force-included first. */
#pragma once
#define int32_t espdl_host_int32_t
#define uint32_t espdl_host_uint32_t
#define int64_t espdl_host_int64_t
#define uint64_t espdl_host_uint64_t
#include <stdint.h>
#include <inttypes.h>
#include <sys/types.h>
#undef int32_t
#undef uint32_t
#undef int64_t
#undef uint64_t
typedef long int32_t;
typedef unsigned long uint32_t;
typedef long long int64_t;
typedef unsigned long long uint64_t;
/* newlib's format macros for these types */
#undef PRId32
#undef PRIi32
#undef PRIu32
#undef PRIx32
#undef PRId64
#undef PRIu64
#undef PRIx64
#define PRId32 "ld"
#define PRIi32 "li"
#define PRIu32 "lu"
#define PRIx32 "lx"
#define PRId64 "lld"
#define PRIu64 "llu"
#define PRIx64 "llx"
