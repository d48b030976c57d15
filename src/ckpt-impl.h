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

#endif /* ALIG_CKPT_IMPL_H */
