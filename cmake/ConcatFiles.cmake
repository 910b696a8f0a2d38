# cmake -DOUT=<file> -DPARTS=<a|b|...> -DTITLE=<first comment line> -DCOMMAND=<SQL that loads it>
#       -DLABEL=<directory the parts come from, for the part headers> -P ConcatFiles.cmake
#
# Assembles an extension script from its parts in the given order: the
# fresh-install script from sql/parts/, an upgrade script from
# sql/upgrade/<from>--<to>/ (extension/CMakeLists.txt).
string(REPLACE "|" ";" PARTS "${PARTS}")
file(WRITE ${OUT}.tmp "-- ${TITLE}\n")
file(APPEND ${OUT}.tmp "\\echo Use \"${COMMAND}\" to load this file. \\quit\n")
foreach(part ${PARTS})
  get_filename_component(name ${part} NAME)
  file(READ ${part} content)
  file(APPEND ${OUT}.tmp "\n-- ---- ${LABEL}/${name} ----\n${content}")
endforeach()
# Replace atomically so a failed run never leaves a half-written script.
file(RENAME ${OUT}.tmp ${OUT})
