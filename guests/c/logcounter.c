// logcounter — a small command guest that counts log lines by their first
// word (e.g. INFO, WARN, ERROR).
//
// usage: logcounter [outfile]
//
// Reads stdin line by line and, for each line, prints
//     <line number> <word> <running count of that word>
// where <word> is the line's first space-separated word ("-" for a blank
// line), cut to WORD_BYTES_MAX bytes. Once more than WORDS_MAX distinct words
// have been seen, new ones are counted as "OTHER". At EOF it prints
//     total lines=<n> words=<distinct>
// and, if `outfile` is given (a path inside a preopened directory, e.g.
// /out/counts.txt), writes one "<word> <count>" line per word there in order
// of first appearance. Output is a pure function of stdin and the arguments.
// Exit status: 0 done, 1 I/O error, 2 usage.

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define WORD_BYTES_MAX 31u
// Distinct words tracked; a bound on the table, not a property of logs.
#define WORDS_MAX 64u

typedef struct {
    char text[WORD_BYTES_MAX + 1];
    uint64_t count;
} word_count;

static word_count words[WORDS_MAX + 1];  // +1: the OTHER bucket
static uint32_t word_total;

static word_count *lookup(const char *w) {
    for (uint32_t i = 0; i < word_total; i++) {
        if (strcmp(words[i].text, w) == 0) return &words[i];
    }
    if (word_total >= WORDS_MAX) w = "OTHER";
    for (uint32_t i = 0; i < word_total; i++) {
        if (strcmp(words[i].text, w) == 0) return &words[i];
    }
    word_count *wc = &words[word_total++];
    strcpy(wc->text, w);
    return wc;
}

int main(int argc, char **argv) {
    if (argc > 2) {
        fprintf(stderr, "usage: logcounter [outfile]\n");
        return 2;
    }
    const char *outfile = argc == 2 ? argv[1] : NULL;

    uint64_t lines = 0;
    char word[WORD_BYTES_MAX + 1];
    uint32_t word_len = 0;
    int in_word = 1, any = 0, c;
    // A streaming scan: lines of any length, only the first word is kept.
    while ((c = getchar()) != EOF || any) {
        if (c == EOF || c == '\n') {
            word[word_len] = '\0';
            word_count *wc = lookup(word_len ? word : "-");
            wc->count++;
            lines++;
            printf("%llu %s %llu\n", (unsigned long long)lines, wc->text,
                   (unsigned long long)wc->count);
            fflush(stdout);
            word_len = 0;
            in_word = 1;
            any = 0;
            if (c == EOF) break;
            continue;
        }
        any = 1;
        if (c == '\r') continue;
        if (c == ' ' || c == '\t') {
            if (word_len) in_word = 0;
            continue;
        }
        if (in_word && word_len < WORD_BYTES_MAX) word[word_len++] = (char)c;
    }
    printf("total lines=%llu words=%u\n", (unsigned long long)lines, word_total);
    fflush(stdout);

    if (outfile) {
        FILE *f = fopen(outfile, "w");
        if (!f) {
            fprintf(stderr, "logcounter: cannot open %s: %s\n", outfile, strerror(errno));
            return 1;
        }
        for (uint32_t i = 0; i < word_total; i++) {
            fprintf(f, "%s %llu\n", words[i].text, (unsigned long long)words[i].count);
        }
        if (ferror(f) | fclose(f)) {
            fprintf(stderr, "logcounter: cannot write %s\n", outfile);
            return 1;
        }
    }
    return 0;
}
