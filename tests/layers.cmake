# The layering rule (pipeline -> workers -> kernels, never back) is held by the build: each
# layer's library sees only its own folder and those below it (CMakeLists.txt). These tests
# run the C compiler on tiny files in exactly the include context of a layer's own sources
# (the target's INCLUDE_DIRECTORIES, transitive) and expect each "upward" include to fail with
# "No such file" and each allowed one to compile.
#   layers_kernels:  kernels sees kernels.h, util.h, rng.h; not model.h, tokenizer.h, config.h
#   layers_workers:  workers sees model.h, tokenizer.h, kernels.h, util.h; not config.h, store.h
#   layers_pipeline: the pipeline sees everything (config.h, store.h, model.h, hdf5.h)
foreach(layer kernels workers pipeline)
  add_test(NAME layers_${layer} COMMAND bash ${BIPO_TEST_DIR}/layer_check.sh ${CMAKE_C_COMPILER}
    ${BIPO_TEST_DIR}/layers/${layer}.txt
    "-I$<JOIN:$<TARGET_PROPERTY:bipo_${layer},INCLUDE_DIRECTORIES>,;-I>"
    "-D$<JOIN:$<TARGET_PROPERTY:bipo_${layer},COMPILE_DEFINITIONS>,;-D>"
    COMMAND_EXPAND_LISTS)
  set_tests_properties(layers_${layer} PROPERTIES LABELS "unit;layers")
endforeach()
