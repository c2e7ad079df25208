# tests/kernels.cmake — the backend table: every op against a double reference, every backward
# against finite differences (tests/test_kernels.c).
bipo_add_test(kernels SOURCES ${BIPO_TEST_DIR}/test_kernels.c)
add_test(NAME kernels COMMAND test_kernels)
set_tests_properties(kernels PROPERTIES LABELS "unit")
