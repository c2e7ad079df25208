# YAML config (pipeline/config.c) and pair datasets (workers/dataset.c).
bipo_add_test(config SOURCES ${BIPO_TEST_DIR}/test_config.c LIBS bipo_pipeline)
add_test(NAME config COMMAND test_config)
set_tests_properties(config PROPERTIES LABELS "unit;config")

bipo_add_test(dataset SOURCES ${BIPO_TEST_DIR}/test_dataset.c)
add_test(NAME dataset COMMAND test_dataset)
set_tests_properties(dataset PROPERTIES LABELS "unit;config;data")

# The table of training settings (workers/hparams.c): pinned job hashes, the hash column, the
# run attributes and the train: reader. test_hparams_extra compiles the table, config.c and
# plan.c again with BIPO_HPARAMS_TEST (one row and its member added, nothing else) ahead of
# the libraries, so the linker takes those objects and not the archives' copies.
bipo_add_test(hparams SOURCES ${BIPO_TEST_DIR}/test_hparams.c LIBS bipo_pipeline)
add_test(NAME hparams COMMAND test_hparams)
set_tests_properties(hparams PROPERTIES LABELS "unit;config")
bipo_add_test(hparams_extra SOURCES ${BIPO_TEST_DIR}/test_hparams.c ${CMAKE_SOURCE_DIR}/workers/hparams.c
              ${CMAKE_SOURCE_DIR}/pipeline/config.c ${CMAKE_SOURCE_DIR}/pipeline/plan.c LIBS bipo_pipeline)
target_compile_definitions(test_hparams_extra PRIVATE BIPO_HPARAMS_TEST=1)
add_test(NAME hparams_extra COMMAND test_hparams_extra)
set_tests_properties(hparams_extra PROPERTIES LABELS "unit;config")
