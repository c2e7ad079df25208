# The Slurm batch scripts (jobs/*.sbatch) on a real single-node Slurm started by the test
# (tests/slurm_test.sh, scripts/slurm-local): needs root; installs slurm-wlm + munge with
# apt-get when missing. Uses make_tiny from tests/cli.cmake.
add_test(NAME slurm COMMAND bash ${BIPO_TEST_DIR}/slurm_test.sh $<TARGET_FILE:bipo-pipeline>
  $<TARGET_FILE:make_tiny> ${CMAKE_SOURCE_DIR})
set_tests_properties(slurm PROPERTIES LABELS "slurm" TIMEOUT 420 RUN_SERIAL TRUE)
