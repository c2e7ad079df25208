# tests/cuda.cmake — the CUDA backend. Without a GPU: the kernels' per-thread bodies on the
# host against the CPU ops (test_cuda_bodies, built in every configuration) and the table's
# completeness (test_cuda_table, CUDA builds). With one (label "gpu", run by
# bench/gpu-check.sh): every op CUDA vs CPU and a tiny model's forward + backward; they exit
# with 77 (CTest: skipped) and print "SKIP: no CUDA device" when there is none.
bipo_add_test(cuda_bodies SOURCES ${BIPO_TEST_DIR}/test_cuda_bodies.c)
add_test(NAME cuda_bodies COMMAND test_cuda_bodies)
set_tests_properties(cuda_bodies PROPERTIES LABELS "unit;cuda")

if(BIPO_HAVE_CUDA)
  bipo_add_test(cuda_table SOURCES ${BIPO_TEST_DIR}/test_cuda_table.c)
  add_test(NAME cuda_table COMMAND test_cuda_table)
  set_tests_properties(cuda_table PROPERTIES LABELS "unit;cuda")
endif()

# GPU tests: skipped (exit 77) without a device
if(BIPO_HAVE_CUDA)
  foreach(t cuda_ops cuda_model)
    bipo_add_test(${t} SOURCES ${BIPO_TEST_DIR}/test_${t}.c)
    add_test(NAME ${t} COMMAND test_${t})
    set_tests_properties(${t} PROPERTIES LABELS "gpu;cuda" SKIP_RETURN_CODE 77 TIMEOUT 300)
  endforeach()
endif()
