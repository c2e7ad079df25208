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

// Messages to rank 0 (one tag; the first u64 of the blob is the type).
enum { MSG_REQUEST = 1, MSG_CHECKPOINT = 2, MSG_RESULT = 3, MSG_EVAL = 4 }; // MSG_EVAL: eval_msg.c
#define BIPO_TAG_TO_ROOT 101
#define BIPO_TAG_REPLY 102
void msg_send(const bipo_blob *b, int dest, int tag, MPI_Comm comm);
// Receives the next message with this tag from source (MPI_ANY_SOURCE: any rank) into b;
// returns the rank it came from.
int msg_recv(bipo_blob *b, int source, int tag, MPI_Comm comm);
int msg_pending(int tag, MPI_Comm comm); // a message is waiting (non-blocking)
// Group broadcast of a blob from the group's rank 0.
void blob_bcast(bipo_blob *b, MPI_Comm comm);

#endif
