# tests/tokenizer.cmake — tokenizers and chat templates (label "tokenizer").
#   test_tokenizer         llama.cpp vocab vectors (5 vocabs), default-model round trip and
#                          specials, robustness (invalid UTF-8, NUL, 1 MB), loader errors
#   test_tokenizer_oracle  Llama-2 tokenizer.model via the distribution's sentencepiece
#                          (python3): ids identical on a few thousand strings, through a GGUF
#                          vocab and a tokenizer.json written by tests/tokenizer_oracle.py
#   test_chat              chat templates and the BiPO pair builder
bipo_add_test(tokenizer SOURCES ${BIPO_TEST_DIR}/test_tokenizer.c ${BIPO_TEST_DIR}/test_tokenizer_lib.c)
add_test(NAME tokenizer COMMAND test_tokenizer)
set_tests_properties(tokenizer PROPERTIES LABELS "tokenizer" TIMEOUT 120)

bipo_add_test(tokenizer_oracle SOURCES ${BIPO_TEST_DIR}/test_tokenizer_oracle.c
              ${BIPO_TEST_DIR}/test_tokenizer_lib.c)
add_test(NAME tokenizer_oracle COMMAND test_tokenizer_oracle)
set_tests_properties(tokenizer_oracle PROPERTIES LABELS "tokenizer" TIMEOUT 120 SKIP_RETURN_CODE 77)

bipo_add_test(chat SOURCES ${BIPO_TEST_DIR}/test_chat.c)
add_test(NAME chat COMMAND test_chat)
set_tests_properties(chat PROPERTIES LABELS "tokenizer" TIMEOUT 60)

# the CLI: one JSON object; HF-style pieces; errors exit non-zero with one line
add_test(NAME tokenize_cli_spm COMMAND bipo-pipeline tokenize
         --model ${BIPO_SHARED_DATA}/llama.cpp-vocab/ggml-vocab-llama-spm.gguf --text "Hello world")
set_tests_properties(tokenize_cli_spm PROPERTIES LABELS "tokenizer"
  PASS_REGULAR_EXPRESSION "^{\"ids\": \\[1, 15043, 3186\\], \"pieces\": \\[\"<s>\", \"▁Hello\", \"▁world\"\\]}")
add_test(NAME tokenize_cli_nobos COMMAND bipo-pipeline tokenize --no-bos
         --model ${BIPO_SHARED_DATA}/llama.cpp-vocab/ggml-vocab-gpt-2.gguf --text "Hello \"world\"")
set_tests_properties(tokenize_cli_nobos PROPERTIES LABELS "tokenizer"
  PASS_REGULAR_EXPRESSION "\"pieces\": \\[\"Hello\", \"Ġ\\\\\"\", \"world\", \"\\\\\"\"\\]")
add_test(NAME tokenize_cli_bad_model COMMAND bipo-pipeline tokenize --model /nonexistent --text x)
set_tests_properties(tokenize_cli_bad_model PROPERTIES LABELS "tokenizer" WILL_FAIL TRUE)
add_test(NAME tokenize_cli_usage COMMAND bipo-pipeline tokenize --text x)
set_tests_properties(tokenize_cli_usage PROPERTIES LABELS "tokenizer" WILL_FAIL TRUE)
