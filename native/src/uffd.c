// userfaultfd write-protect trackers (wp-async, wp-sync). Filled in by the
// tracking work; until then the addon reports that no kernel tracker is built.
#include "addon.h"

napi_value us_init_uffd(napi_env env, napi_value exports) {
  napi_value f;
  if (napi_get_boolean(env, false, &f) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "uffdBuilt", f) != napi_ok) return NULL;
  return exports;
}
