# YAML config (pipeline/config.c) and pair datasets (workers/dataset.c).
bipo_add_test(config SOURCES ${BIPO_TEST_DIR}/test_config.c LIBS bipo_pipeline)
add_test(NAME config COMMAND test_config)
set_tests_properties(config PROPERTIES LABELS "unit;config")

bipo_add_test(dataset SOURCES ${BIPO_TEST_DIR}/test_dataset.c)
add_test(NAME dataset COMMAND test_dataset)
set_tests_properties(dataset PROPERTIES LABELS "unit;config;data")
