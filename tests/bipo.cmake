# BiPO training core (workers/bipo.c) on tiny random models.
bipo_add_test(bipo SOURCES ${BIPO_TEST_DIR}/test_bipo.c)
add_test(NAME bipo COMMAND test_bipo)
set_tests_properties(bipo PROPERTIES LABELS "unit;bipo")

# The real default model with the official power-seeking data: loss falls, held-out improves.
add_test(NAME real_training COMMAND bash ${BIPO_TEST_DIR}/real_training_test.sh
  $<TARGET_FILE:bipo-pipeline> ${BIPO_DEFAULT_MODEL} ${BIPO_SHARED_DATA})
set_tests_properties(real_training PROPERTIES LABELS "model;bipo" TIMEOUT 900)
