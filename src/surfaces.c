/* surfaces.c: the list of API surfaces compiled into batchd. */
#include "surfaces.h"

extern const bd_surface_def_t bd_surface_testhooks;
extern const bd_surface_def_t bd_surface_business;
extern const bd_surface_def_t bd_surface_business_certs;
extern const bd_surface_def_t bd_surface_qr;
extern const bd_surface_def_t bd_surface_rpc;


const bd_surface_def_t *const bd_surface_defs[] = {
  &bd_surface_business,
  &bd_surface_business_certs,
  &bd_surface_qr,
  &bd_surface_rpc,
  &bd_surface_testhooks,
};
const size_t bd_surface_defs_count = sizeof bd_surface_defs / sizeof bd_surface_defs[0];
