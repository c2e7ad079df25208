# tests/formats.cmake — model file formats: GGUF, safetensors, dtypes and the test-model
# writers. The reference for dequantization is the PyPI gguf package (scripts/setup installs
# it into /usr/bin/python3) driven through tests/dequant_ref.py.
set(BIPO_TEST_PYTHON /usr/bin/python3 CACHE FILEPATH "python3 with numpy + gguf (test references)")

bipo_add_test(formats SOURCES ${BIPO_TEST_DIR}/test_formats.c)
add_test(NAME formats COMMAND test_formats ${BIPO_TEST_PYTHON})
set_tests_properties(formats PROPERTIES LABELS "format" TIMEOUT 300)

bipo_add_test(formats_roundtrip SOURCES ${BIPO_TEST_DIR}/test_formats_roundtrip.c)
add_test(NAME formats_roundtrip COMMAND test_formats_roundtrip ${BIPO_TEST_PYTHON})
set_tests_properties(formats_roundtrip PROPERTIES LABELS "format" TIMEOUT 300)

# Damaged files: registered twice, the second time under AddressSanitizer (an ASan copy of the
# core, with testlib/testmodel compiled straight into the test) so an out-of-bounds read on a
# damaged file fails the test even when it would not crash.
bipo_add_test(formats_bad SOURCES ${BIPO_TEST_DIR}/test_formats_bad.c)
add_test(NAME formats_bad COMMAND test_formats_bad)
set_tests_properties(formats_bad PROPERTIES LABELS "format" TIMEOUT 120)

set(BIPO_ASAN_FLAGS -fsanitize=address -fno-omit-frame-pointer)
if(NOT TARGET bipo_core_asan) # other fragments may build the same ASan core
  bipo_add_core(bipo_core_asan ${BIPO_ASAN_FLAGS})
endif()
add_executable(test_formats_bad_asan ${BIPO_TEST_DIR}/test_formats_bad.c
  ${BIPO_TEST_DIR}/lib/testlib.c ${BIPO_TEST_DIR}/lib/testmodel.c)
set_target_properties(test_formats_bad_asan PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
target_include_directories(test_formats_bad_asan PRIVATE ${BIPO_TEST_DIR}/lib)
target_compile_options(test_formats_bad_asan PRIVATE ${BIPO_C_FLAGS} ${BIPO_ASAN_FLAGS})
target_compile_definitions(test_formats_bad_asan PRIVATE BIPO_SHARED_DATA="${BIPO_SHARED_DATA}"
  BIPO_TEST_DIR="${BIPO_TEST_DIR}" BIPO_DEFAULT_MODEL="${BIPO_DEFAULT_MODEL}")
target_link_options(test_formats_bad_asan PRIVATE ${BIPO_ASAN_FLAGS})
target_link_libraries(test_formats_bad_asan PRIVATE bipo_core_asan)
add_test(NAME formats_bad_asan COMMAND test_formats_bad_asan)
set_tests_properties(formats_bad_asan PROPERTIES LABELS "format" TIMEOUT 300
  ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1")
