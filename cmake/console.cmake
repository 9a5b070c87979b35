# The console's files as a generated source: ${VPPD_CONSOLE_ASSETS_CC}, regenerated whenever
# a file of web/dist (built by scripts/build with npm) appears, changes or goes away.
# Without web/dist it holds web/fallback.html, which says how to get the full console.
set(VPPD_CONSOLE_DIST ${PROJECT_SOURCE_DIR}/web/dist)
set(VPPD_CONSOLE_ASSETS_CC ${CMAKE_BINARY_DIR}/generated/console_assets.cc)
file(GLOB_RECURSE vppd_console_files CONFIGURE_DEPENDS ${VPPD_CONSOLE_DIST}/*)
# The list's hash is on the command line, so that a file going away (no newer input for
# Ninja to see) still runs the command again.
string(SHA1 vppd_console_list "${vppd_console_files}")
add_custom_command(
  OUTPUT ${VPPD_CONSOLE_ASSETS_CC}
  COMMAND ${CMAKE_COMMAND} -DDIST=${VPPD_CONSOLE_DIST} -DFALLBACK=${PROJECT_SOURCE_DIR}/web/fallback.html
          -DOUTPUT=${VPPD_CONSOLE_ASSETS_CC} -DLIST=${vppd_console_list} -P ${PROJECT_SOURCE_DIR}/cmake/embed_console.cmake
  DEPENDS ${vppd_console_files} ${PROJECT_SOURCE_DIR}/web/fallback.html ${PROJECT_SOURCE_DIR}/cmake/embed_console.cmake
  COMMENT "Embedding the console (web/dist)"
  VERBATIM)
