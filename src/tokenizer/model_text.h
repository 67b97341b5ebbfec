// The text side of a model path: its tokenizer and chat template, found where the checkpoint
// keeps them (GGUF metadata, or tokenizer.json / tokenizer_config.json in a Hugging Face dir).
// Not generation: `strata run/chat` and `strata serve` both build prompts through this.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace strata {

struct ModelText {
  std::shared_ptr<const Tokenizer> tokenizer;
  ChatTemplate chat_template;  // empty when the model ships none (has_chat_template false)
  bool has_chat_template = false;

  // messages (OpenAI-style) -> prompt ids, rendered as transformers' apply_chat_template with
  // the tokenizer's bos/eos tokens, then encoded without adding special tokens again (the
  // template already wrote them). Throws Error when the model has no chat template.
  std::vector<int> chat_prompt(const nlohmann::ordered_json& messages, ChatOptions opt) const;
  std::string render_chat(const nlohmann::ordered_json& messages, ChatOptions opt) const;
};

// `tokenizer_path` overrides where the tokenizer is read from (empty: the model path itself).
ModelText load_model_text(const std::string& model_path, const std::string& tokenizer_path = "");

}  // namespace strata
