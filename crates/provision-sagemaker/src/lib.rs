//! provision-sagemaker
