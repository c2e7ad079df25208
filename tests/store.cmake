# tests/store.cmake — the HDF5 vector library (pipeline/store.c, store_read.c, store_h5.c), label "unit;store".
#   test_store  runs (2 models × 2 behaviors × 2 layers), rerun detection, new config keeps the
#               old run, checkpoints bit-exact, provenance, h5py reads what C wrote
#               (tests/store_h5py.py), kill -9 crash safety, bad files and the writer lock
set(BIPO_TEST_PYTHON /usr/bin/python3 CACHE FILEPATH "python3 with numpy + h5py (test references)")
bipo_add_test(store SOURCES ${BIPO_TEST_DIR}/test_store.c LIBS bipo_pipeline)
add_test(NAME store COMMAND test_store ${BIPO_TEST_PYTHON} ${BIPO_TEST_DIR}/store_h5py.py)
set_tests_properties(store PROPERTIES LABELS "unit;store" TIMEOUT 120)
