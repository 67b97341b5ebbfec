// Finding a model's tokenizer and chat template (see model_text.h).
#include "tokenizer/model_text.h"

#include "core/error.h"
#include "io/gguf.h"
#include "model/arch/arch.h"

namespace strata {

ModelText load_model_text(const std::string& model_path, const std::string& tokenizer_path) {
  ModelText t;
  t.tokenizer = Tokenizer::load(tokenizer_path.empty() ? model_path : tokenizer_path);
  if (is_gguf_path(model_path)) {
    GgufFile g = GgufFile::open(model_path);
    if (g.has("tokenizer.chat_template")) {
      t.chat_template = ChatTemplate::from_string(g.get_string("tokenizer.chat_template"));
      t.has_chat_template = true;
    }
    return t;
  }
  try {
    t.chat_template = ChatTemplate::from_tokenizer_config(model_path);
    t.has_chat_template = true;
  } catch (const Error&) {
    // No template in the directory (e.g. a base model): raw prompts still work.
  }
  return t;
}

std::string ModelText::render_chat(const nlohmann::ordered_json& messages, ChatOptions opt) const {
  STRATA_CHECK(has_chat_template, "this model has no chat template; send a raw prompt instead");
  // A GGUF template comes without tokenizer_config.json's special tokens: take the vocabulary's.
  const auto& own = chat_template.special_tokens();
  if (!opt.vars.contains("bos_token") && !own.count("bos_token")) opt.vars["bos_token"] = tokenizer->bos_token();
  if (!opt.vars.contains("eos_token") && !own.count("eos_token")) opt.vars["eos_token"] = tokenizer->eos_token();
  return chat_template.render(messages, opt);
}

std::vector<int> ModelText::chat_prompt(const nlohmann::ordered_json& messages, ChatOptions opt) const {
  return tokenizer->encode(render_chat(messages, std::move(opt)), /*add_special=*/false);
}

}  // namespace strata
