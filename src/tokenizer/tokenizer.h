// Text <-> token ids, exactly as the checkpoint's own tokenizer does it.
//
// Sources: a Hugging Face `tokenizer.json` (or a directory holding one; `tokenizer_config.json`
// beside it supplies bos/eos), or a GGUF file's `tokenizer.ggml.*` vocabulary.
// Pipeline (as HF tokenizers): added/special tokens are split out of the raw text first, each
// remaining segment is normalized, pre-tokenized into pieces, each piece runs through the model
// (BPE by merge ranks, or SentencePiece-style BPE by scores for GGUF llama vocabularies), and a
// post-processor adds bos/eos when asked. Decoding runs the decoder chain and is UTF-8 safe.
// Thread-safe: one Tokenizer is shared by every request.
#pragma once
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace strata {

struct TokenizerImpl;
class Tokenizer;
// Wraps a filled pipeline (the loaders' last step).
std::shared_ptr<const Tokenizer> tokenizer_from_impl(std::unique_ptr<TokenizerImpl> impl);

class Tokenizer {
 public:
  // `path`: tokenizer.json, a directory holding one, or a .gguf file. Throws Error on any defect.
  static std::shared_ptr<const Tokenizer> load(const std::string& path);
  static std::shared_ptr<const Tokenizer> from_json_text(const std::string& json_text, const std::string& source);
  static std::shared_ptr<const Tokenizer> from_gguf(const std::string& gguf_path);
  ~Tokenizer();

  // `text` must be valid UTF-8 (Error otherwise). Special-token text in `text` (e.g.
  // "<|im_start|>") becomes its id, as in HF. `add_special` applies the post-processor
  // (e.g. a leading <s>), like HF's add_special_tokens=True.
  std::vector<int> encode(std::string_view text, bool add_special = false) const;
  // HF decode: ids -> text; ill-formed UTF-8 becomes U+FFFD. Unknown ids are an Error.
  std::string decode(std::span<const int> ids, bool skip_special = false) const;

  int vocab_size() const;  // highest id + 1
  std::optional<int> token_to_id(std::string_view token) const;
  std::string id_to_token(int id) const;  // the vocabulary string ("" for holes)
  bool is_special(int id) const;
  std::optional<int> bos_id() const;
  std::optional<int> eos_id() const;
  std::string bos_token() const;  // "" when none
  std::string eos_token() const;

  const TokenizerImpl& impl() const { return *impl_; }

 private:
  explicit Tokenizer(std::unique_ptr<TokenizerImpl> impl);
  friend std::shared_ptr<const Tokenizer> tokenizer_from_impl(std::unique_ptr<TokenizerImpl> impl);
  std::unique_ptr<TokenizerImpl> impl_;
};

// Streaming detokenization: feed generated ids one at a time, get the text they add.
// Never emits a broken UTF-8 sequence (waits for the rest of a character), and the
// concatenation of all outputs plus finish() equals tokenizer.decode(all ids).
class StreamDecoder {
 public:
  StreamDecoder(std::shared_ptr<const Tokenizer> tok, bool skip_special = true,
                std::span<const int> prompt_ids = {});
  std::string push(int id);  // the newly completed text (possibly empty)
  std::string finish();      // whatever is still held back (as U+FFFD when incomplete)

 private:
  std::shared_ptr<const Tokenizer> tok_;
  bool skip_special_;
  std::vector<int> ids_;
  size_t prefix_ = 0, read_ = 0;  // window: ids_[prefix_, read_) already emitted as context
};

}  // namespace strata
