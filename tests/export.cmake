# tests/export.cmake — `bipo-pipeline export` (pipeline/cmd_export.c, export_*.c), label "unit;export".
#   export       test_export: a library written with the store API; f32, gguf (read back by
#                workers/gguf.h), safetensors (jansson), pt (zip walk) bit-exact; --all and its
#                names; missing entry / wrong layer / unknown format / layer 0 as GGUF /
#                unwritable target: one stderr line, non-zero exit, nothing left behind
#   export_py    tests/test_export.py: the same files through the PyPI `gguf` and `safetensors`
#                packages, zipfile (CRCs) and a torch-free unpickler of the .pt steer_config
#                (torch.load too when torch is importable)
set(BIPO_TEST_PYTHON /usr/bin/python3 CACHE FILEPATH "python3 with numpy + gguf + safetensors (test references)")
bipo_add_test(export SOURCES ${BIPO_TEST_DIR}/test_export.c LIBS bipo_pipeline)
add_test(NAME export COMMAND test_export)
set_tests_properties(export PROPERTIES LABELS "unit;export" TIMEOUT 120)
add_test(NAME export_py COMMAND ${BIPO_TEST_PYTHON} ${BIPO_TEST_DIR}/test_export.py
  $<TARGET_FILE:bipo-pipeline> $<TARGET_FILE:test_export>)
set_tests_properties(export_py PROPERTIES LABELS "unit;export" TIMEOUT 120)
