# cmake -DOUT=<file> -DPARTS=<a|b|...> -P ConcatFiles.cmake
string(REPLACE "|" ";" PARTS "${PARTS}")
file(WRITE ${OUT}.tmp "-- pg_durable 1.0 install script, assembled from sql/parts/ at build time.\n")
file(APPEND ${OUT}.tmp "\\echo Use \"CREATE EXTENSION pg_durable\" to load this file. \\quit\n")
foreach(part ${PARTS})
  get_filename_component(name ${part} NAME)
  file(READ ${part} content)
  file(APPEND ${OUT}.tmp "\n-- ---- sql/parts/${name} ----\n${content}")
endforeach()
# Replace atomically so a failed run never leaves a half-written script.
file(RENAME ${OUT}.tmp ${OUT})
