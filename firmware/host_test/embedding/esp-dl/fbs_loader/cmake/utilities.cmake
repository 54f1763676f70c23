# Stand-in for ESP-DL 3.3's fbs_loader/cmake/utilities.cmake (see ../../README.md).
# target_add_aligned_binary_data(target file type): the file as an assembler source in the build folder,
# 16-byte aligned, defining _binary_<name>_start and _end. Like ESP-DL's, the generating script is found
# through `cmake_dir`, which the caller sets to this folder.
function(target_add_aligned_binary_data target embed_file embed_type)
    idf_build_get_property(build_dir BUILD_DIR)
    get_filename_component(embed_file ${embed_file} ABSOLUTE)
    get_filename_component(name ${embed_file} NAME)
    set(source ${build_dir}/${name}.S)
    add_custom_command(OUTPUT ${source}
        COMMAND ${CMAKE_COMMAND} -D DATA_FILE=${embed_file} -D SOURCE_FILE=${source} -D ALIGNMENT=16
                -P ${cmake_dir}/data_file_embed_asm_aligned.cmake
        MAIN_DEPENDENCY ${embed_file}
        DEPENDS ${cmake_dir}/data_file_embed_asm_aligned.cmake
        VERBATIM)
    target_sources(${target} PRIVATE ${source})
endfunction()
