"""What a model and a run need to know about a dataset, for images and text alike."""

import dataclasses


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset is not available locally (nothing is downloaded at run time)."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset as the model sees it.

    Args:
        input_shape: Model input shape without the batch axis. Images: `(height, width,
            channels)`, the images' own shape or `ImageCrops.image_size` squared for datasets
            whose images vary in size. Text: `(num_steps,)`, the tokens of one truncated-BPTT
            window (`tfgrow.data.TextStreams`).
        num_classes: Number of label classes (text: the vocabulary size).
        num_train: Number of examples in the training split (text: windows of `num_steps`
            tokens, so that `num_train // batch_size` is the number of training steps).
        num_eval: Number of examples in the evaluation split (`eval_split(name)`).
        language_model: Next-token prediction on token streams that continue from one batch
            to the next (`tfgrow.data.text`): models are built for a fixed batch size and carry
            their recurrent state across batches, and runs report perplexity.
    """

    input_shape: tuple
    num_classes: int
    num_train: int
    num_eval: int
    language_model: bool = False

    def model_arguments(self, global_batch_size):
        """A model builder's arguments for this data besides `(input_shape, num_classes)`: a
        language model's stateful layers keep one state per row of a fixed batch, so its
        builder takes `batch_size`; other builders take none."""
        return {"batch_size": global_batch_size} if self.language_model else {}
