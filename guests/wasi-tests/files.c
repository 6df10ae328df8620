// File system conformance: create/write/seek/read, pread/pwrite, truncate,
// stat sizes, readdir, rename, unlink, mkdir/rmdir, errors, escape attempts,
// an unlinked-but-open file, and a file preloaded from the host.
// Expects a preopen at /sandbox holding input.txt. Prints one line per step.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void res(const char *what, int rc) {
  if (rc < 0) printf("%s: error %s\n", what, strerror(errno));
  else printf("%s: %d\n", what, rc);
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list(const char *path) {
  DIR *d = opendir(path);
  if (!d) { printf("opendir %s: error %s\n", path, strerror(errno)); return; }
  char *names[64];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 64) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof names[0], cmp);
  printf("ls %s:", path);
  for (int i = 0; i < n; i++) { printf(" %s", names[i]); free(names[i]); }
  printf("\n");
}

int main(void) {
  char buf[128];
  res("mkdir dir", mkdir("/sandbox/dir", 0755));
  res("mkdir dir again", mkdir("/sandbox/dir", 0755));

  FILE *f = fopen("/sandbox/dir/a.txt", "w");
  fputs("hello world\n", f);
  fclose(f);

  int fd = open("/sandbox/dir/a.txt", O_RDWR);
  res("lseek 6", (int)lseek(fd, 6, SEEK_SET));
  res("write WASI!", (int)write(fd, "WASI!", 5));
  res("lseek 0", (int)lseek(fd, 0, SEEK_SET));
  ssize_t n = read(fd, buf, sizeof buf - 1);
  buf[n < 0 ? 0 : n] = 0;
  printf("read %d: %s", (int)n, buf);
  res("lseek end", (int)lseek(fd, 0, SEEK_END));
  res("pwrite at 20", (int)pwrite(fd, "tail", 4, 20));
  struct stat st;
  fstat(fd, &st);
  printf("size after pwrite: %lld\n", (long long)st.st_size);
  n = pread(fd, buf, sizeof buf, 0);
  printf("pread %d bytes, byte 15 is %d, tail is %.4s\n", (int)n, buf[15], buf + 20);
  res("ftruncate 5", ftruncate(fd, 5));
  fstat(fd, &st);
  printf("size after truncate: %lld regular=%d\n", (long long)st.st_size, S_ISREG(st.st_mode));
  close(fd);

  fd = open("/sandbox/dir/b.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  memset(buf, 'x', 100);
  for (int i = 0; i < 10; i++) write(fd, buf, 100);
  close(fd);
  stat("/sandbox/dir/b.txt", &st);
  printf("b.txt size: %lld\n", (long long)st.st_size);
  fd = open("/sandbox/dir/b.txt", O_WRONLY | O_APPEND);
  write(fd, "!", 1);
  close(fd);
  stat("/sandbox/dir/b.txt", &st);
  printf("b.txt size after append: %lld\n", (long long)st.st_size);
  stat("/sandbox/dir", &st);
  printf("dir is dir: %d\n", S_ISDIR(st.st_mode));

  res("open excl existing", open("/sandbox/dir/b.txt", O_WRONLY | O_CREAT | O_EXCL, 0644));
  res("open missing", open("/sandbox/dir/none.txt", O_RDONLY));
  res("open escape", open("/sandbox/../etc/passwd", O_RDONLY));
  res("open file as dir", open("/sandbox/dir/b.txt/x", O_RDONLY));
  list("/sandbox/dir");

  res("rename a->c", rename("/sandbox/dir/a.txt", "/sandbox/dir/c.txt"));
  res("stat a", stat("/sandbox/dir/a.txt", &st));
  res("mkdir sub", mkdir("/sandbox/dir/sub", 0755));
  res("rename c->sub/d", rename("/sandbox/dir/c.txt", "/sandbox/dir/sub/d.txt"));
  list("/sandbox/dir");
  list("/sandbox/dir/sub");
  res("rmdir non-empty", rmdir("/sandbox/dir"));
  res("unlink dir", unlink("/sandbox/dir/sub"));
  res("unlink b", unlink("/sandbox/dir/b.txt"));
  res("unlink b again", unlink("/sandbox/dir/b.txt"));

  // An unlinked file stays readable through an open descriptor.
  fd = open("/sandbox/dir/sub/d.txt", O_RDONLY);
  res("unlink d while open", unlink("/sandbox/dir/sub/d.txt"));
  n = read(fd, buf, sizeof buf - 1);
  buf[n < 0 ? 0 : n] = 0;
  printf("read unlinked: %s\n", buf);
  close(fd);

  res("rmdir sub", rmdir("/sandbox/dir/sub"));
  res("rmdir dir", rmdir("/sandbox/dir"));
  res("stat dir", stat("/sandbox/dir", &st));

  f = fopen("/sandbox/input.txt", "r");
  if (f) {
    char line[64];
    while (fgets(line, sizeof line, f)) printf("input: %s", line);
    fclose(f);
  } else {
    printf("input: error %s\n", strerror(errno));
  }

  f = fopen("/sandbox/out.txt", "w");
  fprintf(f, "written by the guest\n");
  fclose(f);
  list("/sandbox");
  return 0;
}
