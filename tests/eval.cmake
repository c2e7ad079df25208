# A/B steering curves and CAA vectors (workers/eval_ab.c, eval_caa.c, eval_score.c) on a tiny
# random GGUF model: every number against a direct one-sequence-at-a-time computation.
bipo_add_test(eval_ab SOURCES ${BIPO_TEST_DIR}/test_eval_ab.c)
add_test(NAME eval_ab COMMAND test_eval_ab)
set_tests_properties(eval_ab PROPERTIES LABELS "unit;eval")
# the same under AddressSanitizer (packed-layout index arithmetic: an off-by-one reads out of
# bounds without crashing)
bipo_add_asan_test(eval_ab ${BIPO_TEST_DIR}/test_eval_ab.c)
