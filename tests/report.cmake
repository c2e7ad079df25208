# tests/report.cmake — `bipo-pipeline report` (pipeline/report*.c, cmd_report.c), label "report":
# a tiny trained + evaluated library -> the HTML page's structure, bad input, and the page
# rendered by headless Chromium with its pixels checked plot by plot (tests/report_test.sh,
# tests/report_png.py; the render SKIPs visibly without chromium).
add_test(NAME report COMMAND bash ${BIPO_TEST_DIR}/report_test.sh $<TARGET_FILE:bipo-pipeline>
  $<TARGET_FILE:make_tiny> ${CMAKE_SOURCE_DIR})
set_tests_properties(report PROPERTIES LABELS "report;cli" TIMEOUT 300)

# docs/PYTHON.md's example as a tested script: h5py reads checked against inspect --json.
add_test(NAME python_reader COMMAND bash ${BIPO_TEST_DIR}/python_reader_test.sh
  $<TARGET_FILE:bipo-pipeline> $<TARGET_FILE:make_tiny> ${CMAKE_SOURCE_DIR})
set_tests_properties(python_reader PROPERTIES LABELS "report;cli" TIMEOUT 300)
