/* qr_ceiling.c: the ceiling for QR rendering on this machine: a plain loop
 * of libqrencode + libpng (1-bit palette PNG at zlib level 1, 1024 px) over
 * N payloads, on T threads. Prints items per second as JSON.
 * Usage: qr_ceiling N THREADS */
#include <png.h>
#include <pthread.h>
#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  unsigned char *p;
  size_t n, cap;
} mem_t;

static void wr(png_structp png, png_bytep d, png_size_t n) {
  mem_t *m = png_get_io_ptr(png);
  if (m->n + n > m->cap) {
    m->cap = (m->n + n) * 2;
    m->p = realloc(m->p, m->cap);
  }
  memcpy(m->p + m->n, d, n);
  m->n += n;
}
static void fl(png_structp png) { (void)png; }

static size_t render(const char *payload, int size, mem_t *out) {
  QRcode *qr = QRcode_encodeString8bit(payload, 0, QR_ECLEVEL_M);
  int total = qr->width + 8, scale = size / total, off = (size - scale * qr->width) / 2;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(png, out, wr, fl);
  png_set_IHDR(png, info, size, size, 1, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_color pal[2] = {{255, 255, 255}, {0, 0, 0}};
  png_set_PLTE(png, info, pal, 2);
  png_set_compression_level(png, 1);
  png_set_filter(png, 0, PNG_FILTER_NONE);
  png_write_info(png, info);
  size_t rb = (size + 7) / 8;
  png_bytep row = calloc(rb, 1);
  for (int y = 0; y < off; y++) png_write_row(png, row);
  for (int my = 0; my < qr->width; my++) {
    memset(row, 0, rb);
    for (int mx = 0; mx < qr->width; mx++)
      if (qr->data[my * qr->width + mx] & 1)
        for (int x = off + mx * scale; x < off + (mx + 1) * scale; x++) row[x >> 3] |= 0x80 >> (x & 7);
    for (int k = 0; k < scale; k++) png_write_row(png, row);
  }
  memset(row, 0, rb);
  for (int y = off + scale * qr->width; y < size; y++) png_write_row(png, row);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  free(row);
  QRcode_free(qr);
  return out->n;
}

static int g_n;
static void *worker(void *arg) {
  long t = (long)arg;
  mem_t m = {0};
  char payload[128];
  for (int i = 0; i < g_n; i++) {
    snprintf(payload, sizeof payload, "http://127.0.0.1:8080/s/%08ld%08d", t, i);
    m.n = 0;
    render(payload, 1024, &m);
  }
  free(m.p);
  return NULL;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2000, threads = argc > 2 ? atoi(argv[2]) : 1;
  g_n = n / threads;
  pthread_t th[64];
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long t = 0; t < threads; t++) pthread_create(&th[t], NULL, worker, (void *)t);
  for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
  printf("{\"items\": %d, \"threads\": %d, \"seconds\": %.3f, \"items_per_s\": %.1f}\n", g_n * threads, threads, s,
         g_n * threads / s);
  return 0;
}
