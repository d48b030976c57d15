/*
 * ckpt-impl.h -- internal header shared by src/ckpt.c and src/ckpt_h5.c.
 */
#ifndef ALIG_CKPT_IMPL_H
#define ALIG_CKPT_IMPL_H

#include "alig/config.h"

/*
 * Every key of the config as `alig-train --print-config` prints it
 * (alig_config_write), as a malloc'd string; NULL when out of memory.
 * Stored in checkpoints as /config_effective and compared on resume.
 */
char *alig_ckpt_config_text_(const alig_config_t *cfg);

/*
 * Adam/AdamW state of a checkpoint: /optim/second_moment into second
 * (n_params; zeros when absent) and the /optim adam_steps attribute.
 */
#include "alig/model.h"
int alig_ckpt_read_second_moment(const char *path, const alig_model_t *m, float *second,
                                 int64_t *adam_steps);

#endif /* ALIG_CKPT_IMPL_H */
