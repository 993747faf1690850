# Helpers that give every subsystem the same shape: one library target per folder,
# one test binary per *_test.cc, all with the same include paths and warnings.

# engram_cc_library(NAME common SRCS a.cc b.cc DEPS fmt::fmt PUBLIC_DEPS engram::x)
# Creates target engram_<NAME> and alias engram::<NAME>. DEPS are PRIVATE, so a
# subsystem cannot reach what its dependencies use internally (DESIGN §1).
function(engram_cc_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS;PUBLIC_DEPS" ${ARGN})
  set(target engram_${ARG_NAME})
  add_library(${target} STATIC ${ARG_SRCS})
  add_library(engram::${ARG_NAME} ALIAS ${target})
  target_include_directories(${target}
    PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${target} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_DEPS})
endfunction()

# engram_cc_test(NAME status_test SRCS status_test.cc DEPS engram::common [LABELS unit])
# Builds one GoogleTest binary and registers each of its tests with CTest.
function(engram_cc_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_include_directories(${ARG_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src
                             ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  gtest_discover_tests(${ARG_NAME}
    DISCOVERY_MODE PRE_TEST
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
endfunction()
