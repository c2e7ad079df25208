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

# Damaged files: registered twice, the second time under AddressSanitizer (bipo_add_asan_test).
bipo_add_test(formats_bad SOURCES ${BIPO_TEST_DIR}/test_formats_bad.c)
add_test(NAME formats_bad COMMAND test_formats_bad)
set_tests_properties(formats_bad PROPERTIES LABELS "format" TIMEOUT 120)

bipo_add_asan_test(formats_bad ${BIPO_TEST_DIR}/test_formats_bad.c)
set_tests_properties(formats_bad_asan PROPERTIES LABELS "format")
