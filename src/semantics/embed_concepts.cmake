# cmake -DIN=concepts.txt -DOUT=builtin_concepts.cc -P embed_concepts.cmake
# Writes the file as a raw string literal (split in chunks: compilers cap one literal).
file(READ ${IN} text)
string(LENGTH "${text}" length)
set(out "// Generated from src/semantics/data/concepts.txt by embed_concepts.cmake. Do not edit.\n")
string(APPEND out "namespace engram {\nextern const char kBuiltinConcepts[];\nconst char kBuiltinConcepts[] =\n")
set(pos 0)
while(pos LESS length)
  string(SUBSTRING "${text}" ${pos} 4000 chunk)
  string(APPEND out "R\"engram_concepts(${chunk})engram_concepts\"\n")
  math(EXPR pos "${pos} + 4000")
endwhile()
string(APPEND out "\"\";\n}  // namespace engram\n")
file(WRITE ${OUT} "${out}")
