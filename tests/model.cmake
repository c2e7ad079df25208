# Model forward tests on tiny random models (see tests/test_model.c).
bipo_add_test(model SOURCES ${BIPO_TEST_DIR}/test_model.c)
add_test(NAME model COMMAND test_model)
set_tests_properties(model PROPERTIES LABELS "unit;model")

bipo_add_test(model_errors SOURCES ${BIPO_TEST_DIR}/test_model_errors.c)
add_test(NAME model_errors COMMAND test_model_errors)
set_tests_properties(model_errors PROPERTIES LABELS "unit;model;format")
bipo_add_asan_test(model_errors ${BIPO_TEST_DIR}/test_model_errors.c)
set_tests_properties(model_errors_asan PROPERTIES LABELS "model;format")

bipo_add_test(backward SOURCES ${BIPO_TEST_DIR}/test_backward.c)
add_test(NAME backward COMMAND test_backward)
set_tests_properties(backward PROPERTIES LABELS "unit;model")

bipo_add_test(lora SOURCES ${BIPO_TEST_DIR}/test_lora.c)
add_test(NAME lora COMMAND test_lora)
set_tests_properties(lora PROPERTIES LABELS "unit;model")

# Generation (workers/generate.c): pinned greedy / sampled / steered outputs, KV cache vs full
# forwards, the sampler's frequencies.
bipo_add_test(generate SOURCES ${BIPO_TEST_DIR}/test_generate.c)
add_test(NAME generate COMMAND test_generate)
set_tests_properties(generate PROPERTIES LABELS "unit;model")
# The activation/gradient buffer tables (workers/buffers.c): sizes, shared slots, growth, and
# free releases everything (counting backend; the ASan copy also checks bounds and leaks).
bipo_add_test(buffers SOURCES ${BIPO_TEST_DIR}/test_buffers.c)
add_test(NAME buffers COMMAND test_buffers)
set_tests_properties(buffers PROPERTIES LABELS "unit;model")
bipo_add_asan_test(buffers ${BIPO_TEST_DIR}/test_buffers.c)
set_tests_properties(buffers_asan PROPERTIES LABELS "model")
