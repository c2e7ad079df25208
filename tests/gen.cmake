# Steered generation for evaluation and the CLI: batched decoding (workers/generate.c), fluency
# scores (workers/fluency.c), jailbreak ASR helpers (workers/jailbreak.c), the generate /
# logprobs steering options (tests/gen_cli_test.sh).
bipo_add_test(generate_batch SOURCES ${BIPO_TEST_DIR}/test_generate_batch.c)
add_test(NAME generate_batch COMMAND test_generate_batch)
set_tests_properties(generate_batch PROPERTIES LABELS "unit;model")
bipo_add_asan_test(generate_batch ${BIPO_TEST_DIR}/test_generate_batch.c)
set_tests_properties(generate_batch_asan PROPERTIES LABELS "model")
bipo_add_test(fluency SOURCES ${BIPO_TEST_DIR}/test_fluency.c)
add_test(NAME fluency COMMAND test_fluency)
set_tests_properties(fluency PROPERTIES LABELS "unit;model")
bipo_add_test(jailbreak SOURCES ${BIPO_TEST_DIR}/test_jailbreak.c)
add_test(NAME jailbreak COMMAND test_jailbreak)
set_tests_properties(jailbreak PROPERTIES LABELS "unit;data")
add_test(NAME gen_cli COMMAND bash ${BIPO_TEST_DIR}/gen_cli_test.sh $<TARGET_FILE:bipo-pipeline>
  $<TARGET_FILE:make_tiny> ${CMAKE_SOURCE_DIR})
set_tests_properties(gen_cli PROPERTIES LABELS "cli" TIMEOUT 300)
bipo_add_test(steered_text SOURCES ${BIPO_TEST_DIR}/test_steered_text.c)
add_test(NAME steered_text COMMAND test_steered_text)
set_tests_properties(steered_text PROPERTIES LABELS "unit;model")
