# Evaluation data (evaldata): scripts/fetch-data + data/MANIFEST.tsv against the local mirror
# ../shared/data, `plan` on every shipped config with the fetched data (tests/fetch_data_test.sh);
# the MMLU / TruthfulQA / neutral-text loaders and scorers (tests/test_eval_mc.c).
add_test(NAME fetch_data COMMAND bash ${BIPO_TEST_DIR}/fetch_data_test.sh
  $<TARGET_FILE:bipo-pipeline> ${CMAKE_SOURCE_DIR} ${BIPO_SHARED_DATA} ${BIPO_DEFAULT_MODEL})
set_tests_properties(fetch_data PROPERTIES LABELS "data" TIMEOUT 300 SKIP_RETURN_CODE 77)
bipo_add_test(eval_mc SOURCES ${BIPO_TEST_DIR}/test_eval_mc.c)
add_test(NAME eval_mc COMMAND test_eval_mc)
set_tests_properties(eval_mc PROPERTIES LABELS "unit;eval;data")
