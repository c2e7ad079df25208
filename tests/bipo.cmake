# BiPO training core (workers/bipo.c) on tiny random models.
bipo_add_test(bipo SOURCES ${BIPO_TEST_DIR}/test_bipo.c)
add_test(NAME bipo COMMAND test_bipo)
set_tests_properties(bipo PROPERTIES LABELS "unit;bipo")
