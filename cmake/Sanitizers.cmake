# JOBD_SANITIZE=address: AddressSanitizer + UndefinedBehaviorSanitizer (the test build).
# JOBD_SANITIZE=thread: ThreadSanitizer (the concurrency tests).
# JOBD_SANITIZE=fuzz: libFuzzer's instrumentation + ASan + UBSan, with
# clang (scripts/fuzz.sh); the fuzz targets link libFuzzer itself.
if(JOBD_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
elseif(JOBD_SANITIZE STREQUAL "thread")
  # -Wno-tsan: Boost.Asio's fenced blocks use std::atomic_thread_fence, which
  # GCC 12 warns TSan does not model; Asio's own synchronisation is mutexes.
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -Wno-tsan)
  add_link_options(-fsanitize=thread)
elseif(JOBD_SANITIZE STREQUAL "fuzz")
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "JOBD_SANITIZE=fuzz needs clang (CXX=clang++-14)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined
                      -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
elseif(NOT JOBD_SANITIZE STREQUAL "")
  message(FATAL_ERROR
          "JOBD_SANITIZE must be empty, 'address', 'thread' or 'fuzz', not '${JOBD_SANITIZE}'")
endif()
