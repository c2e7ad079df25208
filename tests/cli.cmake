# The command line end to end on tiny random models (tests/cli_test.sh).
add_executable(make_tiny ${BIPO_TEST_DIR}/tools/make_tiny.c)
set_target_properties(make_tiny PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
target_compile_options(make_tiny PRIVATE ${BIPO_C_FLAGS})
target_link_libraries(make_tiny PRIVATE bipo_testlib)
add_test(NAME cli COMMAND bash ${BIPO_TEST_DIR}/cli_test.sh $<TARGET_FILE:bipo-pipeline>
  $<TARGET_FILE:make_tiny> ${CMAKE_SOURCE_DIR})
set_tests_properties(cli PROPERTIES LABELS "cli" TIMEOUT 600)

# The pipeline under mpirun (2 and 3 ranks, kill -9 and resume, nightly append).
add_test(NAME mpi COMMAND bash ${BIPO_TEST_DIR}/mpi_test.sh $<TARGET_FILE:bipo-pipeline>
  $<TARGET_FILE:make_tiny> ${CMAKE_SOURCE_DIR} ${MPIEXEC_EXECUTABLE})
set_tests_properties(mpi PROPERTIES LABELS "mpi" TIMEOUT 900 RUN_SERIAL TRUE)
