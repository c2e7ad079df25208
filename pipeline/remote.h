// pipeline/remote.h — the vector library over MPI. Only rank 0 opens the library; group
// leaders on other ranks send it their writes (checkpoints, finished runs) as messages, and
// ask it for jobs. A library call is serialized into a byte blob, sent, and executed by rank
// 0 with the same store functions a single process calls directly.
#ifndef BIPO_REMOTE_H
#define BIPO_REMOTE_H
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h" // defines: bipo_job_key, bipo_run_data, bipo_checkpoint, bipo_attr

typedef struct {
    uint8_t *p;
    size_t n, cap, at; // at: read position
} bipo_blob;
void blob_free(bipo_blob *b);
void blob_put(bipo_blob *b, const void *x, size_t n);
void blob_put_u64(bipo_blob *b, uint64_t v);
void blob_put_str(bipo_blob *b, const char *s); // NULL allowed
void blob_put_f32s(bipo_blob *b, const float *x, size_t n);
uint64_t blob_get_u64(bipo_blob *b);
char *blob_get_str(bipo_blob *b); // malloc'd, NULL if NULL was put
float *blob_get_f32s(bipo_blob *b, size_t n);

// Serialization of the store's argument structs (the blob owns nothing of the inputs).
void blob_put_key(bipo_blob *b, const bipo_job_key *k);
void blob_put_run_data(bipo_blob *b, const bipo_run_data *d);
void blob_put_checkpoint(bipo_blob *b, const bipo_checkpoint *c);
void blob_put_attrs(bipo_blob *b, const bipo_attr *a, size_t n);
// Readers allocate (free strings with free(), structs with their _free functions).
void blob_get_key(bipo_blob *b, bipo_job_key *k);
void blob_get_run_data(bipo_blob *b, bipo_run_data *d);
void blob_get_checkpoint(bipo_blob *b, bipo_checkpoint *c);
bipo_attr *blob_get_attrs(bipo_blob *b, size_t *n);
void free_key(bipo_job_key *k);
void free_attrs(bipo_attr *a, size_t n);

// Messages to rank 0 (one tag; the first u64 of the blob is the type), each encoder beside
// its decoder in remote.c. A decoder runs after the type was read with blob_get_u64.
enum { MSG_REQUEST = 1, MSG_CHECKPOINT = 2, MSG_RESULT = 3, MSG_EVAL = 4 }; // MSG_EVAL: eval_msg.c
#define BIPO_TAG_TO_ROOT 101
#define BIPO_TAG_REPLY 102
// A group leader asks for a job; `loaded` is the model index its group holds (-1 none).
void msg_put_request(bipo_blob *b, int group, long loaded);
void msg_get_request(bipo_blob *b, int *group, long *loaded);
// Rank 0's answer (and a leader's broadcast to its group): a job index (-1: no more jobs)
// and its checkpoint (ck NULL: none). msg_get_job returns the job; *have = a checkpoint came.
void msg_put_job(bipo_blob *b, long job, const bipo_checkpoint *ck);
long msg_get_job(bipo_blob *b, bipo_checkpoint *ck, int *have);
// A checkpoint to write (decoded parts: free_key, bipo_checkpoint_free).
void msg_put_checkpoint(bipo_blob *b, const bipo_job_key *k, const bipo_checkpoint *c);
void msg_get_checkpoint(bipo_blob *b, bipo_job_key *k, bipo_checkpoint *c);
// A finished run: the arguments of bipo_store_write_run.
typedef struct {
    bipo_job_key k;
    bipo_model_info mi;
    bipo_behavior_info bi;
    bipo_run_data d;
    bipo_attr *a;
    size_t n;
} bipo_result_msg;
void msg_put_result(bipo_blob *b, const bipo_job_key *k, const bipo_model_info *mi,
                    const bipo_behavior_info *bi, const bipo_run_data *d, const bipo_attr *a, size_t n);
void msg_get_result(bipo_blob *b, bipo_result_msg *r); // allocates; free with msg_result_free
void msg_result_free(bipo_result_msg *r);
void msg_send(const bipo_blob *b, int dest, int tag, MPI_Comm comm);
// Receives the next message with this tag from source (MPI_ANY_SOURCE: any rank) into b;
// returns the rank it came from.
int msg_recv(bipo_blob *b, int source, int tag, MPI_Comm comm);
int msg_pending(int tag, MPI_Comm comm); // a message is waiting (non-blocking)
// Group broadcast of a blob from the group's rank 0.
void blob_bcast(bipo_blob *b, MPI_Comm comm);

#endif
