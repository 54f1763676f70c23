# cmake -D DATA_FILE=... -D SOURCE_FILE=... -D ALIGNMENT=16 -P data_file_embed_asm_aligned.cmake
# Writes an assembler source that puts DATA_FILE's bytes in read-only data at the given alignment, between
# the symbols _binary_<file name as a C identifier>_start and _end (as ESP-IDF's and ESP-DL's scripts name them).
get_filename_component(name ${DATA_FILE} NAME)
string(MAKE_C_IDENTIFIER ${name} symbol)
file(WRITE ${SOURCE_FILE}
".section .rodata
.balign ${ALIGNMENT}
.global _binary_${symbol}_start
_binary_${symbol}_start:
.incbin \"${DATA_FILE}\"
.global _binary_${symbol}_end
_binary_${symbol}_end:
.section .note.GNU-stack,\"\",@progbits
")
