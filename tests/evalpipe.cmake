# tests/evalpipe.cmake — evaluation in the job, pipeline side (config_eval.c, store_eval.c,
# eval_msg.c, eval_job.c, eval_all.c, inspect_eval.c), label "eval".
#   test_eval_pipe  eval: block parsing (good / bad with file:line:col), store round trip of
#                   result tables, MSG_EVAL encode/decode round trip
#   eval_cli        tiny models end to end: train with eval, inspect --json, eval skips, a
#                   transfer across hidden sizes fails naming both models, 2 ranks == 1 rank
bipo_add_test(eval_pipe SOURCES ${BIPO_TEST_DIR}/test_eval_pipe.c LIBS bipo_pipeline)
add_test(NAME eval_pipe COMMAND test_eval_pipe)
set_tests_properties(eval_pipe PROPERTIES LABELS "unit;eval" TIMEOUT 120)

add_executable(make_tiny32 ${BIPO_TEST_DIR}/tools/make_tiny32.c)
set_target_properties(make_tiny32 PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
target_compile_options(make_tiny32 PRIVATE ${BIPO_C_FLAGS})
target_link_libraries(make_tiny32 PRIVATE bipo_testlib)
add_test(NAME eval_cli COMMAND bash ${BIPO_TEST_DIR}/eval_cli_test.sh $<TARGET_FILE:bipo-pipeline>
  $<TARGET_FILE:make_tiny> $<TARGET_FILE:make_tiny32> ${CMAKE_SOURCE_DIR} ${MPIEXEC_EXECUTABLE})
set_tests_properties(eval_cli PROPERTIES LABELS "eval;cli" TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
