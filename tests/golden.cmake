# The real default model (SmolLM2-135M-Instruct Q4_1 GGUF, from scripts/fetch-model) against
# the committed float64 reference tests/golden/smollm2_golden.json (tests/golden/make_golden.py).
# A missing model is a failure with a hint, not a skip: CI fetches the model first.
bipo_add_test(golden SOURCES ${BIPO_TEST_DIR}/test_golden.c)
add_test(NAME golden COMMAND test_golden ${BIPO_TEST_DIR}/golden/smollm2_golden.json)
set_tests_properties(golden PROPERTIES LABELS "model" TIMEOUT 300)
