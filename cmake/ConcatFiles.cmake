# cmake -DOUT=<file> -DPARTS=<a;b;...> -P ConcatFiles.cmake
file(WRITE ${OUT} "-- pg_durable 1.0 install script, assembled from sql/parts/ at build time.\n")
file(APPEND ${OUT} "\\echo Use \"CREATE EXTENSION pg_durable\" to load this file. \\quit\n")
foreach(part ${PARTS})
  get_filename_component(name ${part} NAME)
  file(READ ${part} content)
  file(APPEND ${OUT} "\n-- ---- sql/parts/${name} ----\n${content}")
endforeach()
