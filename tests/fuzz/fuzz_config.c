/*
 * fuzz_config.c -- libFuzzer target: the INI config parser and --set.
 * Any input must give ALIG_OK or ALIG_E_CONFIG with a message, never a
 * crash, a sanitizer report or a leak; an accepted config must write out
 * and parse back to the same text.
 */
#include "alig/config.h"
#include "alig/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    alig_config_t cfg;
    alig_config_defaults(&cfg);
    int rc = alig_config_parse(&cfg, text, "fuzz.ini");
    if (rc != ALIG_OK && rc != ALIG_E_CONFIG)
        abort();
    if (rc != ALIG_OK && alig_error_message()[0] == '\0')
        abort();
    if (rc == ALIG_OK) {
        rc = alig_config_validate(&cfg, 3);
        if (rc != ALIG_OK && rc != ALIG_E_CONFIG)
            abort();
        /* round trip: write, parse again, write again: same text */
        char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        FILE *f = open_memstream(&a, &na);
        alig_config_write(f, &cfg);
        fclose(f);
        alig_config_t again;
        alig_config_defaults(&again);
        if (alig_config_parse(&again, a, "roundtrip.ini") != ALIG_OK)
            abort();
        f = open_memstream(&b, &nb);
        alig_config_write(f, &again);
        fclose(f);
        if (na != nb || memcmp(a, b, na) != 0)
            abort();
        free(a);
        free(b);
        alig_config_free(&again);
    }
    /* the first line as a --set override */
    char *nl = strchr(text, '\n');
    if (nl)
        *nl = '\0';
    rc = alig_config_set(&cfg, text);
    if (rc != ALIG_OK && rc != ALIG_E_CONFIG)
        abort();
    alig_config_free(&cfg);
    free(text);
    return 0;
}
