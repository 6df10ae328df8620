// Copies stdin to stdout until end of input, then reports the byte count on stderr.
#include <stdio.h>
#include <unistd.h>

int main(void) {
  char buf[7]; // small on purpose: many reads
  long total = 0;
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0) { perror("read"); return 1; }
    if (n == 0) break;
    write(1, buf, (size_t)n);
    total += n;
  }
  fprintf(stderr, "echoed %ld bytes\n", total);
  return 0;
}
