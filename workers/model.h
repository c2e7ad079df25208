// workers/model.h — a frozen Llama-family transformer: load (HF safetensors or GGUF), forward
// over packed variable-length batches with a steering hook, KV cache for generation.
//
// Shapes (see kernels/kernels.h for the letters): N tokens in the packed batch, C hidden,
// NH/NKV heads, HD head dim, FF MLP, V vocab, L layers, QD = NH*HD, KVD = NKV*HD.
// Layers: `layer` (a hook's layer, the layer a job trains at) and the loop index `l` are 0-based
// HF `model.layers[layer]`; L is only ever the number of layers. "The output of layer `layer`"
// is HF hidden_states[layer+1]; steering adds m*v to it before layer+1 reads it.
#ifndef BIPO_MODEL_H
#define BIPO_MODEL_H
#include <stddef.h>
#include <stdint.h>

#include "kernels.h" // defines: bipo_backend, bipo_seqs

enum { BIPO_ARCH_LLAMA = 0, BIPO_ARCH_MISTRAL = 1 };

typedef struct {
    int arch;
    char arch_name[64]; // "LlamaForCausalLM", "MistralForCausalLM" (GGUF: from general.architecture)
    size_t L, C, NH, NKV, HD, FF, V;
    size_t max_pos;        // max_position_embeddings / context_length
    float rope_theta;
    float rms_eps;
    size_t sliding_window; // 0 = full causal attention
    int tied;              // lm_head is the token embedding
    int bos_id, eos_id;    // from the model file when present, else -1
} bipo_config;

// Per-layer weight pointers into the one parameter buffer (all f32, HF layout).
typedef struct {
    float *attn_norm; // [C]
    float *wq;        // [QD, C]
    float *wk;        // [KVD, C]
    float *wv;        // [KVD, C]
    float *wo;        // [C, QD]
    float *ffn_norm;  // [C]
    float *w_gate;    // [FF, C]
    float *w_up;      // [FF, C]
    float *w_down;    // [C, FF]
} bipo_layer_weights;

typedef struct {
    bipo_config cfg;
    const bipo_backend *be;
    char path[4096];
    int is_gguf;
    float *params;      // the one weight buffer (backend memory)
    size_t n_params;    // floats
    float *wte;         // [V, C]
    float *norm_f;      // [C]
    float *lm_head;     // [V, C] (== wte when tied)
    bipo_layer_weights *layers; // [L]
    char fingerprint[65]; // sha256 of config + tensor names/shapes/dtypes (provenance)
    char source_dtype[16]; // dominant dtype of the file's matrices, for reports
} bipo_model;

// path: an HF directory (config.json + safetensors) or a .gguf file. 0, or -1 + bipo_last_error().
int bipo_model_load(bipo_model *m, const char *path, const bipo_backend *be);
void bipo_model_free(bipo_model *m);
// Merges the PEFT LoRA adapter in folder dir into the weights (workers/lora.c) and changes the
// fingerprint accordingly. 0, or -1 + bipo_set_error naming the file and tensor.
int bipo_lora_merge(bipo_model *m, const char *dir);
// The fingerprint bipo_lora_merge would give a model with fingerprint base (no weights needed).
int bipo_lora_fingerprint(const char *base, const char *dir, char out[65]);
// Reads the config and the tensor directory and checks every tensor, without loading weights:
// cfg, fingerprint, source_dtype and n_params are set (no params; free with bipo_model_free).
int bipo_model_probe(bipo_model *m, const char *path);
// FLOPs of a forward over N tokens that each attend to `ctx` keys on average (for reports).
double bipo_model_forward_flops(const bipo_config *c, size_t N, double avg_ctx, size_t n_logit_rows);

// ---- forward ------------------------------------------------------------------------------
// Activations of one forward, kept for the activation-only backward (BiPO). Sized for up to
// cap_N tokens and cap_att attention floats; grown on demand by bipo_forward.
typedef struct {
    size_t cap_N, cap_att, cap_M, cap_K;
    size_t L;
    size_t first;    // layer buffers exist for layers first..L-1 (and resid[first..L])
    // per layer l (saved for backward): [L] arrays of backend buffers
    float **resid;   // [L+1] of [N, C]: resid[l] = input to layer l (resid[0] = embeddings)
    float **ln1;     // [L] [N, C] attn rmsnorm output (one slot shared by all layers: the
                     // backward never reads it; likewise attn_out, ln2, act)
    float **ln1_rstd; // [L] [N]
    float **q;       // [L] [N, QD] after RoPE
    float **k;       // [L] [N, KVD] after RoPE
    float **v;       // [L] [N, KVD]
    float **kg, **vg; // [L] [NK, KVD] k/v rows gathered per attention sequence (shared-prefix
                      // layout only; else NULL)
    float **att;     // [L] attention probabilities
    float **attn_out; // [L] [N, QD] (before o_proj)
    float **resid_mid; // [L] [N, C] resid after attention block
    float **ln2;     // [L] [N, C]
    float **ln2_rstd; // [L] [N]
    float **gate;    // [L] [N, FF]
    float **up;      // [L] [N, FF]
    float **act;     // [L] [N, FF] silu(gate)*up
    float *final;    // [N, C] output of the last layer (+ hooks) = resid[L]
    float *head_in;  // [M, C] the gathered rows of resid[L] the LM head reads
    float *lnf;      // [M, C] final norm at the selected rows
    float *lnf_rstd; // [M]
    float *logits;   // [M, V]
    float *scratch;  // [N, max(C, FF)] temporaries
    int save;        // 1: keep every layer's activations (training); 0: reuse one slot (inference)
} bipo_acts;

// One packed batch: S sequences, token offsets off[S+1] into tokens[N]; positions restart at 0
// for every sequence.
//
// Optional shared-prefix layout (kv_rows != NULL): rows are then not independent sequences.
// Attention sequence a has query rows [aq_off[a], aq_off[a+1]) and attends to the key rows
// kv_rows[ak_off[a] .. ak_off[a+1]) in that order, its queries being the last ones of those
// keys; pos[N] gives every row's position. BiPO uses it to store the prompt shared by target
// and opposite once: [prompt | target suffix | opposite suffix], the opposite's attention
// reading the prompt rows and its own suffix (exact under causal attention: the prompt's
// states do not depend on what follows it).
typedef struct {
    size_t S;
    const size_t *off; // [S+1] host
    const int *tokens; // [N] host
    const int *pos;           // [N] or NULL (restart at 0 per sequence)
    size_t AS;                // attention sequences (shared-prefix layout)
    const size_t *aq_off;     // [AS+1]
    const size_t *ak_off;     // [AS+1] offsets into kv_rows
    const size_t *kv_rows;    // [ak_off[AS]] or NULL
} bipo_batch;

// Steering: h_out(layer) += mult * vec at rows where mask != 0 (mask NULL = all rows).
typedef struct {
    int layer;          // the layer whose output is steered (0-based); -1 = no steering
    const float *vec;   // [C] backend buffer
    float mult;
    const uint8_t *mask; // [N] host or NULL
} bipo_hook;

// Row positions (b->pos, or restarting at 0 in every sequence): pos [N] (host, caller frees).
int *bipo_batch_positions(const bipo_batch *b);
// The attention layout of a batch (plain sequences or the shared-prefix layout).
bipo_seqs bipo_batch_seqs(const bipo_batch *b);

// The activations' buffers (workers/buffers.c: one table drives ensure and free).
void bipo_acts_init(bipo_acts *a, int save);
void bipo_acts_free(bipo_acts *a, const bipo_backend *be);
// Makes a hold N tokens, att attention floats, M logit rows and K gathered k/v rows for layers
// first..L-1 (a forward from a cached hidden state never touches the layers below it, so a
// BiPO step at layer 15 of 30 keeps activations for 14 layers only); grows with headroom.
// bipo_forward and bipo_forward_from call it.
void bipo_acts_ensure(bipo_acts *a, const bipo_model *m, size_t N, size_t att, size_t M,
                      size_t first, size_t K);

// Full-batch forward from the embeddings through all layers (or only up to layer `stop` if
// stop >= 0, in which case logits are not computed and acts->resid[stop+1] holds hidden_states
// [stop+1]). Logits only for the M rows listed in rows[] (indices into the packed batch):
// acts->logits [M, V]. hook may be NULL.
//
// prec (here and below): the arithmetic of every linear layer's GEMM the call runs (the LM
// head's included); a precision the backend lacks runs in fp32 (be->supports_precision). BiPO
// computes h_L in fp32 and the layers above it in its forward/backward_matmul setting.
void bipo_forward(bipo_model *m, bipo_acts *acts, const bipo_batch *b, const bipo_hook *hook,
                  const size_t *rows, size_t M, int stop, bipo_matmul_precision prec);

// Runs layers [start, L) on h_in [N, C] (backend) = hidden_states[start] and the LM head at
// rows[M]. A hook at layer start-1 is applied to h_in's copy (that is where BiPO adds d*v, on
// top of a cached h_L); hooks at layers >= start act as in bipo_forward. acts->save must be 1
// for a later bipo_backward.
void bipo_forward_from(bipo_model *m, bipo_acts *acts, const bipo_batch *b, const float *h_in,
                       size_t start, const bipo_hook *hook, const size_t *rows, size_t M,
                       bipo_matmul_precision prec);

// ---- activation-only backward (no weight gradients, ever) ---------------------------------
// Gradient buffers, grown on demand.
typedef struct {
    size_t cap_N, cap_M;
    float *dresid;  // [N, C] gradient of the residual stream (in place, layer by layer)
    float *dln;     // [N, C] into the norms
    float *dq;      // [N, QD]
    float *dk, *dv; // [N, KVD]
    float *dkg, *dvg; // [NK, KVD] (shared-prefix layout)
    size_t cap_K;
    float *dattn;   // [N, QD]
    float *dgate, *dup, *dact; // [N, FF]
    float *dhead;   // [M, C]
} bipo_grads;
// The gradients' buffers (workers/buffers.c, one table): sized for N rows, M scored rows and
// K gathered k/v rows (0: none); bipo_backward calls ensure.
void bipo_grads_ensure(bipo_grads *g, const bipo_model *m, size_t N, size_t M, size_t K);
void bipo_grads_free(bipo_grads *g, const bipo_backend *be);
// Back from dlogits [M, V] (backend; the rows of the last bipo_forward_from) through the LM
// head, final norm and layers L-1 ... start, in exactly the reverse order of the forward.
// On return g->dresid [N, C] holds d(objective)/d(hidden_states[start]) (after the hook).
void bipo_backward(bipo_model *m, bipo_acts *acts, bipo_grads *g, const bipo_batch *b,
                   size_t start, const float *dlogits, const size_t *rows, size_t M,
                   bipo_matmul_precision prec);
// The same from the gradient of the scored log-probs, dlp (HOST [M]), with lse [M] and the
// targets of the forward's logprob_forward: dlogits = dlp (onehot - softmax) is made inside
// the head's GEMM where the backend can (be->logprob_matmul_backward); dlogits [M, V] is
// backend scratch for when it cannot.
void bipo_backward_logprob(bipo_model *m, bipo_acts *acts, bipo_grads *g, const bipo_batch *b,
                           size_t start, const float *dlp, const float *lse, const int *targets,
                           float *dlogits, const size_t *rows, size_t M,
                           bipo_matmul_precision prec);

// ---- the KV-cached forward of one sequence (generation: workers/generate.h) ----
typedef struct {
    size_t cap;  // tokens
    size_t n;    // tokens cached
    float **k;   // [L] [cap, KVD]
    float **v;   // [L] [cap, KVD]
    bipo_acts acts; // inference scratch
} bipo_kv_cache;
void bipo_kv_init(bipo_kv_cache *kv, const bipo_model *m, size_t cap);
void bipo_kv_free(bipo_kv_cache *kv, const bipo_model *m);
// Appends n tokens to the cache and writes the last token's logits to logits_host[V].
void bipo_forward_cached(bipo_model *m, bipo_kv_cache *kv, const int *tokens, size_t n,
                         const bipo_hook *hook, float *logits_host, bipo_matmul_precision prec);

// ---- the KV-cached forward of many sequences (batched generation: workers/generate_batch.c) --
// Sequence b owns the cache rows [base[b], base[b+1]) (its capacity), n[b] of them filled.
// Rows are zero until written, and each is written once.
typedef struct {
    size_t B;       // sequences
    size_t *base;   // [B+1] row offsets of the sequences' regions
    size_t *n;      // [B] tokens cached per sequence
    float **k;      // [L] [base[B], KVD]
    float **v;      // [L] [base[B], KVD]
    bipo_acts acts; // inference scratch
} bipo_kv_batch;
void bipo_kv_batch_init(bipo_kv_batch *kv, const bipo_model *m, const size_t *cap, size_t B);
void bipo_kv_batch_free(bipo_kv_batch *kv, const bipo_model *m);
// One packed forward that appends tokens[off[s], off[s+1]) to sequence seq[s] (s < S; seq
// strictly increasing, every sequence at least one token): positions continue from n[seq[s]],
// attention reads that sequence's cached keys only (the prefill of many prompts and one
// decode step of many sequences are both one call). hooks[n_hooks] apply in order, their masks
// over the call's N = off[S] rows (several multipliers in one batch: one hook each, disjoint
// masks). logits_host [S, V]: each sequence's last new token.
void bipo_forward_cached_batch(bipo_model *m, bipo_kv_batch *kv, const size_t *seq, size_t S,
                               const size_t *off, const int *tokens, const bipo_hook *hooks,
                               size_t n_hooks, float *logits_host, bipo_matmul_precision prec);

#endif
