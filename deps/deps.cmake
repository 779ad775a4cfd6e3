# Every dependency comes from a Debian package; see deps/README.md.
find_package(PkgConfig REQUIRED)
pkg_check_modules(UV REQUIRED IMPORTED_TARGET libuv)
pkg_check_modules(PQ REQUIRED IMPORTED_TARGET libpq)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
pkg_check_modules(QRENCODE REQUIRED IMPORTED_TARGET libqrencode)
pkg_check_modules(CAIRO REQUIRED IMPORTED_TARGET cairo cairo-png cairo-svg cairo-pdf)
pkg_check_modules(PANGO REQUIRED IMPORTED_TARGET pangocairo)
# fontconfig directly: only FcFini, so that sanitizer builds exit with its caches freed
pkg_check_modules(FONTCONFIG REQUIRED IMPORTED_TARGET fontconfig)
pkg_check_modules(PNG REQUIRED IMPORTED_TARGET libpng)
pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib)
pkg_check_modules(DEFLATE REQUIRED IMPORTED_TARGET libdeflate)
pkg_check_modules(JPEG REQUIRED IMPORTED_TARGET libjpeg)
pkg_check_modules(RSVG REQUIRED IMPORTED_TARGET librsvg-2.0)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
pkg_check_modules(ZBAR REQUIRED IMPORTED_TARGET zbar)

# libzint-dev ships no .pc file: header + library (Code 128 barcodes).
find_path(ZINT_INCLUDE_DIR zint.h REQUIRED)
find_library(ZINT_LIBRARY NAMES zint REQUIRED)

# llhttp: Debian's node-llhttp installs the generated C sources; we compile
# them here rather than committing a copy.
set(LLHTTP_SRC_DIR /usr/share/llhttp CACHE PATH "llhttp C sources (node-llhttp)")
set(LLHTTP_INCLUDE_DIR /usr/share/include/llhttp CACHE PATH "llhttp.h (node-llhttp)")
if(NOT EXISTS ${LLHTTP_SRC_DIR}/llhttp.c OR NOT EXISTS ${LLHTTP_INCLUDE_DIR}/llhttp.h)
  message(FATAL_ERROR "llhttp sources not found; install node-llhttp (scripts/setup)")
endif()
add_library(llhttp STATIC ${LLHTTP_SRC_DIR}/llhttp.c ${LLHTTP_SRC_DIR}/api.c ${LLHTTP_SRC_DIR}/http.c)
target_include_directories(llhttp SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
target_compile_options(llhttp PRIVATE -w -O2)
# Strict mode: the CRLF after chunk data, bare CR/LF, spaces in field names
# and other lenient shapes are parse errors, not guesses (SECURITY.md).
target_compile_definitions(llhttp PUBLIC LLHTTP_STRICT_MODE=1)
set_target_properties(llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON)

find_package(Threads REQUIRED)

add_library(bd_deps INTERFACE)
target_include_directories(bd_deps SYSTEM INTERFACE ${ZINT_INCLUDE_DIR})
target_link_libraries(bd_deps INTERFACE llhttp PkgConfig::UV PkgConfig::PQ PkgConfig::JANSSON
  PkgConfig::SODIUM PkgConfig::QRENCODE PkgConfig::CAIRO PkgConfig::PANGO PkgConfig::FONTCONFIG PkgConfig::PNG PkgConfig::ZLIB PkgConfig::DEFLATE
  PkgConfig::JPEG PkgConfig::RSVG PkgConfig::CURL PkgConfig::ZBAR
  ${ZINT_LIBRARY} Threads::Threads m)
