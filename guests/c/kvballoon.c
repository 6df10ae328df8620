// understudy: reactor
// understudy: cflags -Wl,--wrap=malloc -Wl,--wrap=free -Wl,--wrap=calloc -Wl,--wrap=realloc -Wl,--wrap=aligned_alloc -Wl,--wrap=posix_memalign -Wl,--wrap=sbrk
//
// kvballoon — kvstore (kvstore.c, the same requests and answers) with the
// guest SDK's balloon and performance monitor (sdk/understudy_balloon.h).

#include "kvstore.c"
#include "understudy_balloon.h"

US_BALLOON_DEFINE()
